"""Read any common image file as the 8-bit BGR array mmseg's pipelines expect."""
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageReadError(ValueError):
    """A file could not be read as an image; the message says why."""


def read_image(path: str) -> np.ndarray:
    """Read ``path`` as an ``(H, W, 3)`` uint8 BGR array, as displayed.

    EXIF orientation is applied (a portrait photo stored sideways comes out
    upright), grayscale / palette / CMYK / alpha images become RGB (alpha is
    dropped, as OpenCV does), 16- and 32-bit images are scaled to 8 bits and
    multi-frame files give their first frame.

    Raises:
        ImageReadError: the file is missing, empty, not an image, truncated
            or has no pixels.
    """
    try:
        with open(path, 'rb') as f:
            if not f.read(1):
                raise ImageReadError(f'{path}: empty file (0 bytes)')
        # Pillow only warns about a palette image with a transparency chunk
        # and about big (but not huge) images; neither is an error here.
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with Image.open(path) as image:
                image.load()  # decode now: truncated data raises here, not later
                image = ImageOps.exif_transpose(image)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(f'{path}: no such file') from None
    except IsADirectoryError:
        raise ImageReadError(f'{path}: is a folder, not an image') from None
    except UnidentifiedImageError:
        raise ImageReadError(f'{path}: not an image Pillow can read') from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageReadError(f'{path}: unreadable image ({e})') from None
    if image.width == 0 or image.height == 0:
        raise ImageReadError(f'{path}: image has no pixels ({image.width}x{image.height})')
    rgb = to_rgb8(image)
    return np.ascontiguousarray(rgb[..., ::-1])


def to_rgb8(image: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB array of a Pillow image of any mode."""
    if image.mode in ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I', 'F'):
        gray = np.asarray(image, dtype=np.float64)
        peak = float(gray.max(initial=0))
        if image.mode.startswith('I;16'):
            top = 65535.0
        elif image.mode == 'F' and peak <= 1.0:
            top = 1.0  # float image in [0, 1]
        else:  # 32-bit int or float: 8-bit data as is, 16-bit data as 16-bit, else by its peak
            top = 255.0 if peak <= 255 else max(65535.0, peak)
        gray = np.clip(np.rint(gray * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in ('P', 'PA'):
        image = image.convert('RGBA')  # transparency lives in the palette
    if image.mode != 'RGB':
        image = image.convert('RGB')
    return np.asarray(image, dtype=np.uint8)
