"""Fonts embedded in PDF reports, Japanese included, from the fonts installed on the machine.

reportlab embeds TrueType outlines only, and the CJK fonts Debian installs (``fonts-noto-cjk``) are
OpenType/CFF collections. For each document the characters it uses are cut out of Noto Sans CJK JP
(fontTools' subsetter), their cubic outlines converted to TrueType quadratics (cu2qu), and the
result registered with reportlab, which embeds it (``FontFile2``). Nothing is downloaded: when no
CJK font is installed the reportlab CID font is used (readable where the viewer has Japanese fonts,
not embedded) and a warning is logged.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

REGULAR_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKjp-Regular.otf",
)
BOLD_CANDIDATES = tuple(p.replace("Regular", "Bold") for p in REGULAR_CANDIDATES)
FAMILY = "Noto Sans CJK JP"
CID_FALLBACK = "HeiseiKakuGo-W5"
_lock = threading.Lock()


@dataclass(frozen=True)
class PdfFonts:
    regular: str
    bold: str
    embedded: bool


def _find(candidates: tuple[str, ...]) -> Path | None:
    return next((Path(path) for path in candidates if Path(path).is_file()), None)


@lru_cache(maxsize=4)
def _face_number(path: Path) -> int:
    """Index of the Japanese face in a collection (0 for a single font)."""
    if path.suffix.lower() != ".ttc":
        return -1
    from fontTools.ttLib import TTCollection

    collection = TTCollection(str(path), lazy=True)
    for number, font in enumerate(collection.fonts):
        if font["name"].getDebugName(1) == FAMILY:
            return number
    return 0


def _truetype_subset(path: Path, text: str, ps_name: str) -> bytes:
    """The glyphs of ``text`` from ``path`` as a TrueType (glyf) font named ``ps_name``.

    reportlab keeps one font object per PostScript name (``pdfmetrics._dynFaceNames``): a second
    subset under the font's own name would be replaced by the first, so each gets its own."""
    from fontTools.pens.cu2quPen import Cu2QuPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen
    from fontTools.subset import Options, Subsetter
    from fontTools.ttLib import TTFont, newTable

    font = TTFont(str(path), fontNumber=_face_number(path), lazy=False)
    options = Options()
    options.layout_features = []
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.hinting = False
    options.desubroutinize = True
    subsetter = Subsetter(options=options)
    subsetter.populate(text=text)
    subsetter.subset(font)
    for record in list(font["name"].names):
        if record.nameID in (3, 4, 6):
            record.string = ps_name
    if "CFF " in font:  # OpenType/CFF: convert the outlines (fontTools' otf2ttf recipe)
        order = font.getGlyphOrder()
        glyph_set = font.getGlyphSet()
        glyf = newTable("glyf")
        glyf.glyphOrder = order
        glyf.glyphs = {}
        for name in order:
            pen = TTGlyphPen(glyph_set)
            glyph_set[name].draw(Cu2QuPen(pen, 1.0, reverse_direction=True))
            glyf.glyphs[name] = pen.glyph()
        font["loca"] = newTable("loca")
        font["glyf"] = glyf
        del font["CFF "]
        if "VORG" in font:
            del font["VORG"]
        glyf.compile(font)
        for name, glyph in glyf.glyphs.items():
            if hasattr(glyph, "xMin"):
                font["hmtx"][name] = (font["hmtx"][name][0], glyph.xMin)
        maxp = newTable("maxp")
        maxp.tableVersion = 0x00010000
        for attr in ("maxTwilightPoints", "maxStorage", "maxFunctionDefs", "maxInstructionDefs",
                     "maxStackElements", "maxSizeOfInstructions", "maxComponentElements"):
            setattr(maxp, attr, 0)
        maxp.maxZones = 1
        font["maxp"] = maxp
        post = font["post"]
        post.formatType = 3.0  # no glyph names (the PDF's ToUnicode table maps codes to text)
        font.sfntVersion = "\x00\x01\x00\x00"
    buffer = io.BytesIO()
    font.save(buffer)
    return buffer.getvalue()


def pdf_fonts_for(text: str) -> PdfFonts:
    """Fonts covering ``text`` (every character a document shows), registered with reportlab."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    regular = _find(REGULAR_CANDIDATES)
    if regular is None:
        logger.warning("no CJK font installed (apt-get install fonts-noto-cjk): PDF fonts not embedded")
        with _lock:
            pdfmetrics.registerFont(UnicodeCIDFont(CID_FALLBACK))
        return PdfFonts(CID_FALLBACK, CID_FALLBACK, embedded=False)
    bold = _find(BOLD_CANDIDATES) or regular
    chars = "".join(sorted(set(text) | set(" 0123456789")))
    # One name per document: released after its build without touching another build's fonts.
    digest = hashlib.sha256(chars.encode("utf-8")).hexdigest()[:8] + uuid.uuid4().hex[:8]
    names = []
    for path, style in ((regular, "R"), (bold, "B")):
        name = f"MamoruCJK{style}-{digest}"
        program = io.BytesIO(_truetype_subset(path, chars, ps_name=name))
        program.name = f"{name}.ttf"
        with _lock:
            pdfmetrics.registerFont(TTFont(name, program))
        names.append(name)
    return PdfFonts(names[0], names[1], embedded=True)


def pdf_fonts_release(fonts: PdfFonts) -> None:
    """Forget a document's subset fonts once it is built (each export has its own)."""
    if not fonts.embedded:
        return
    from reportlab.pdfbase import pdfmetrics

    with _lock:
        for name in {fonts.regular, fonts.bold}:
            font = pdfmetrics._fonts.pop(name, None)  # reportlab has no public unregister
            if font is not None:
                pdfmetrics._dynFaceNames.pop(getattr(font.face, "name", None), None)
