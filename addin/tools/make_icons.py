"""Draw the add-in's icons (a white padlock on a rounded square in the Sealgate blue) as PNG
files, with nothing but the standard library: zlib and struct.

    python addin/tools/make_icons.py            # writes addin/src/assets/icon-<size>.png

The output is the same byte for byte on every run, so the committed PNGs can be checked
against it. Sizes: 16, 32 and 80 for the command buttons (Outlook requires all three), 64 for
the manifest's IconUrl and 128 for its HighResolutionIconUrl.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

SIZES = (16, 32, 64, 80, 128)
ASSETS = Path(__file__).resolve().parents[1] / "src" / "assets"
BLUE = (0x1F, 0x4E, 0x79)  # the default organisation.colour
WHITE = (0xFF, 0xFF, 0xFF)
SUBSAMPLES = 4  # per axis: 16 samples a pixel smooth the edges

Colour = tuple[int, int, int]


def _in_rounded_square(x: float, y: float, left: float, top: float, right: float,
                       bottom: float, radius: float) -> bool:
    if not (left <= x <= right and top <= y <= bottom):
        return False
    near_x = min(max(x, left + radius), right - radius)
    near_y = min(max(y, top + radius), bottom - radius)
    return (x - near_x) ** 2 + (y - near_y) ** 2 <= radius ** 2


def colour_at(x: float, y: float) -> Colour | None:
    """The colour of the drawing at (x, y) in the unit square; None: transparent."""
    if not _in_rounded_square(x, y, 0.0, 0.0, 1.0, 1.0, 0.18):
        return None
    # The keyhole, cut out of the body.
    if (x - 0.5) ** 2 + (y - 0.61) ** 2 <= 0.065 ** 2 or (
            abs(x - 0.5) <= 0.03 and 0.61 <= y <= 0.74):
        return BLUE
    if _in_rounded_square(x, y, 0.24, 0.45, 0.76, 0.84, 0.06):
        return WHITE
    # The shackle: the upper half of a ring, with short legs down into the body.
    distance = ((x - 0.5) ** 2 + (y - 0.40) ** 2) ** 0.5
    if (y <= 0.40 and 0.12 <= distance <= 0.20) or (
            0.40 <= y <= 0.46 and 0.12 <= abs(x - 0.5) <= 0.20):
        return WHITE
    return BLUE


def pixels(size: int) -> list[bytes]:
    """RGBA rows, each pixel the average of its subsamples."""
    rows = []
    step = 1.0 / (size * SUBSAMPLES)
    for row in range(size):
        line = bytearray()
        for column in range(size):
            red = green = blue = covered = 0
            for sub_y in range(SUBSAMPLES):
                for sub_x in range(SUBSAMPLES):
                    x = (column * SUBSAMPLES + sub_x + 0.5) * step
                    y = (row * SUBSAMPLES + sub_y + 0.5) * step
                    found = colour_at(x, y)
                    if found is not None:
                        red, green, blue = red + found[0], green + found[1], blue + found[2]
                        covered += 1
            samples = SUBSAMPLES * SUBSAMPLES
            if covered:
                line += bytes((round(red / covered), round(green / covered),
                               round(blue / covered), round(255 * covered / samples)))
            else:
                line += bytes(4)
        rows.append(bytes(line))
    return rows


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png(size: int) -> bytes:
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA, no interlace
    raw = b"".join(b"\x00" + row for row in pixels(size))  # filter type 0 on every row
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))


def write_icons(folder: Path = ASSETS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for size in SIZES:
        path = folder / f"icon-{size}.png"
        path.write_bytes(png(size))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_icons(Path(sys.argv[1]) if len(sys.argv) > 1 else ASSETS):
        print(f"wrote {path}")
