"""File downloads shared by the dashboard and the API: a CSV export as a streamed attachment."""

from flask import Response, stream_with_context

from webapp.services.exports import CsvExport


def csv_download(export: CsvExport) -> Response:
    """Stream `export` as a UTF-8 CSV attachment. The request context stays alive while the
    rows are generated (stream_with_context), so the export's queries run after the view returned."""
    response = Response(stream_with_context(export.chunks), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response
