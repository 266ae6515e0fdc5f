"""Every stable error code the service returns, with its HTTP status and meaning.

Request errors come back in the JSON error body with the status given here.
Job errors (status None) are stored on a failed or quarantined job's
`error_code`. The OpenAPI description lists this table, so keep it complete.
"""

REQUEST_ERRORS: dict[str, tuple[int, str]] = {
    "AUTHENTICATION_REQUIRED": (401, "No API key was sent."),
    "INVALID_API_KEY": (401, "The API key is malformed, unknown or revoked."),
    "SCOPE_REQUIRED": (403, "The API key lacks the scope the endpoint needs (named in details.scope)."),
    "PERMISSION_DENIED": (403, "The caller may not use this resource."),
    "NOT_FOUND": (404, "No such object for this caller; other tenants' objects are reported the same way."),
    "METHOD_NOT_ALLOWED": (405, "The endpoint does not support this HTTP method."),
    "NOT_ACCEPTABLE": (406, "No response format matches the Accept header."),
    "MALFORMED_REQUEST": (400, "The request body could not be parsed."),
    "VALIDATION_ERROR": (400, "A parameter is invalid; details.fields names each one."),
    "BAD_REQUEST": (400, "The request is invalid."),
    "FILE_MISSING": (400, "The upload has no multipart field 'file'."),
    "EMPTY_FILE": (400, "The uploaded file is empty."),
    "INVALID_OPTIONS": (400, "The conversion options are invalid; details.fields names each one."),
    "INVALID_IDEMPOTENCY_KEY": (400, "The Idempotency-Key header is empty, too long or not printable."),
    "INVALID_CURSOR": (400, "The pagination cursor is damaged; follow the next/previous links as given."),
    "INVALID_DATE_RANGE": (400, "The report's from/to dates are invalid."),
    "INVALID_GROUP_BY": (400, "The report's group_by value is not supported."),
    "JOB_NOT_CANCELABLE": (409, "The job already finished."),
    "JOB_NOT_RETRYABLE": (409, "Only FAILED or CANCELED jobs can be retried."),
    "RETRY_LIMIT_REACHED": (409, "The job has used all its retries."),
    "DOCUMENT_DELETED": (409, "The document's file was deleted."),
    "ARTIFACT_GONE": (410, "The artifact's file was removed by retention."),
    "FILE_TOO_LARGE": (413, "The upload is larger than UPLOAD_MAX_SIZE_MB."),
    "UNSUPPORTED_MEDIA_TYPE": (415, "The upload is not a PDF (no %PDF- header in its first kilobyte), or the request is not multipart."),
    "IDEMPOTENCY_KEY_REUSED": (422, "The Idempotency-Key was used before with a different request."),
    "RATE_LIMITED": (429, "Too many requests for this key; wait Retry-After seconds."),
    "INTERNAL_ERROR": (500, "The server failed; the error is logged with the request id."),
    "STORAGE_FULL": (507, "DATA_ROOT is full (ENOSPC or EDQUOT), so the upload was not stored; retry once the operator frees space."),
}

JOB_ERRORS: dict[str, str] = {
    "VIRUS_FOUND": "clamd found a signature (named in error_details_json.signature); the job is QUARANTINED.",
    "SCANNER_UNAVAILABLE": "clamd was unreachable after every retry; the file was not converted.",
    "SCAN_LIMIT_EXCEEDED": "The file expands past clamd's scan limits (MaxFileSize, MaxScanSize...), so it was not converted.",
    "RESOURCE_LIMIT": "The conversion broke its memory or CPU cap (CONVERSION_MAX_MEMORY_MB, CONVERSION_MAX_CPU_SECONDS).",
    "WORKER_CRASHED": "The conversion process crashed CONVERSION_MAX_CRASHES times.",
    "PAGE_TOO_LARGE": "A page is larger than MAX_PAGE_SIDE_INCHES.",
    "IMAGE_TOO_LARGE": "An image declares more pixels than MAX_IMAGE_PIXELS.",
    "SCAN_FAILED": "clamd rejected the file (for example above its stream size limit).",
    "PDF_ENCRYPTED": "The PDF needs a password to open.",
    "PDF_CORRUPT": "The PDF is damaged beyond what the reader can repair.",
    "UNSUPPORTED_MEDIA_TYPE": "The file is not a PDF.",
    "PAGE_LIMIT_EXCEEDED": "The PDF has more pages than max_pages allows; the message names both numbers.",
    "FILE_TOO_LARGE": "The PDF is larger than the job's max_file_size_mb.",
    "MODELS_MISSING": "A model the options need (layout, TableFormer, OCR language) is not installed.",
    "CONVERSION_FAILED": "Docling could not convert the document.",
    "TIMEOUT": "A stage ran past its time limit; the message names the limit.",
    "LOST_WORKER": "The worker running the job was lost too many times.",
    "STORAGE_FULL": "DATA_ROOT filled up while a stage wrote its files; the partial outputs were removed. Retry once space is freed.",
    "CANCELED": "The job was canceled on request.",
    "INTERNAL_ERROR": "A stage failed unexpectedly; the worker log has the details.",
}


def markdown_table() -> str:
    rows = ["| error_code | HTTP status | meaning |", "|---|---|---|"]
    rows += [f"| `{code}` | {status} | {text} |" for code, (status, text) in REQUEST_ERRORS.items()]
    rows += ["", "Codes stored on a job (`error_code` of a FAILED or QUARANTINED job):", "",
             "| error_code | meaning |", "|---|---|"]
    rows += [f"| `{code}` | {text} |" for code, text in JOB_ERRORS.items()]
    return "\n".join(rows)
