"""Django REST Framework and the OpenAPI schema."""

REST_FRAMEWORK = {
    # Token first: a request without credentials answers 401 with `WWW-Authenticate: Token`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # DRF's parsers plus the text rule (core/text.py) on every string of every body.
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.JSONParser",
        "core.parsers.FormParser",
        "core.parsers.MultiPartParser",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.PageNumberPagination",
    "DEFAULT_FILTER_BACKENDS": ["config.filters.FilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.PreflabAutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {},
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Preflab API",
    "DESCRIPTION": "Human preference data collection and reward-model training, after Llama 2.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name per choice set, whichever field carries it (otherwise drf-spectacular invents hashed
    # names such as StatusD4fEnum and warns, which `check --deploy` repeats).
    "ENUM_NAME_OVERRIDES": {
        "FocusEnum": "annotation.models.Focus",
        "JobStatusEnum": "preference_data.models.JobStatus",
        "ModelKindEnum": "rewardmodel.models.ModelKind",
        "ExportFormatEnum": "preference_data.models.ExportFormat",
        "RoleEnum": "accounts.models.Role",
        "BackendEnum": "sampling.models.Backend",
        "PairSelectionEnum": "sampling.models.PairSelection",
        "SideEnum": "annotation.models.Side",
        "StrengthEnum": "annotation.models.Strength",
        "SafetyLabelEnum": "annotation.models.SafetyLabel",
    },
}
