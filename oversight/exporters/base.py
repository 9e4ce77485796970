"""The exporter contract: turn a report table into bytes, streamed in chunks.

An exporter never touches the database: it receives a :class:`ReportTable` whose ``rows`` is a
lazy iterator (keyset-paginated by the report), and yields ``bytes``. Streaming formats (CSV, JSON
Lines) yield as they go, so memory stays flat however many rows there are; formats that need the
whole document (XLSX, PDF) write to a temporary file on disk and then yield it in chunks.

Write your own::

    from oversight.exporters import register
    from oversight.exporters.base import BaseExporter

    @register
    class TsvExporter(BaseExporter):
        identifier = "tsv"
        verbose_name = "Tab-separated values"
        media_type = "text/tab-separated-values"
        extension = "tsv"

        def stream(self, table):
            yield ("\\t".join(c.label for c in table.columns) + "\\n").encode()
            for row in table.rows:
                yield ("\\t".join("" if v is None else str(v) for v in row) + "\\n").encode()

A format that a spreadsheet opens must not let text become a formula: pass text cells through
:func:`governance.spreadsheet.formula_safe` (as the CSV exporter does), or write them as string
cells (as the XLSX exporter does).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Column:
    key: str
    label: str


@dataclass
class ReportTable:
    """What a report hands to an exporter. ``rows`` yields tuples in ``columns`` order."""

    title: str
    columns: Sequence[Column]
    rows: Iterable[Sequence[Any]]
    meta: list[tuple[str, str]] = field(default_factory=list)
    summary: list[tuple[str, str]] = field(default_factory=list)
    # Reports whose data is itself a list of tables (Art. 30 sections) may add more tables here.
    notes: list[str] = field(default_factory=list)


class BaseExporter:
    """Base class of exporters. Subclasses set the attributes and implement :meth:`stream`."""

    #: Short name used in URLs and the registry (``csv``).
    identifier: str = ""
    #: Human-readable name shown in the admin.
    verbose_name: str = ""
    #: Content-Type of the result.
    media_type: str = "application/octet-stream"
    #: File name extension without the dot.
    extension: str = "bin"
    #: True when the format streams row by row (worth a direct download even for big reports).
    streaming: bool = False

    def stream(self, table: ReportTable) -> Iterator[bytes]:
        """Yield the document as chunks of bytes."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement stream(table) -> Iterator[bytes]"
        )

    # Helper for whole-document formats: build into a spooled temporary file, then yield chunks.
    def stream_from_file(self, build: Callable[[IO[bytes]], None]) -> Iterator[bytes]:
        with tempfile.TemporaryFile() as handle:
            build(handle)
            handle.seek(0)
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk
