"""Training machinery: layer-decay optimizer constructor."""
from .layer_decay_constructor import LayerDecayOptimWrapperConstructor, find_layer_depth_owner

__all__ = ['LayerDecayOptimWrapperConstructor', 'find_layer_depth_owner']
