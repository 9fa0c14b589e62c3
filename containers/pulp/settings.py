# Pulp settings for the compose stack (containers/compose.yaml). Secrets come from files mounted as compose
# secrets; nothing here phones home: this Pulp lives inside the air gap.
from pathlib import Path


def _secret(name: str) -> str:
    return Path(f"/run/secrets/{name}").read_text().strip()


SECRET_KEY = _secret("pulp_secret_key")
DB_ENCRYPTION_KEY = "/run/secrets/pulp_db_encryption_key"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "pulp",
        "USER": "pulp",
        "PASSWORD": _secret("pg_password"),
        "HOST": "postgres",
        "PORT": 5432,
    }
}
CONTENT_ORIGIN = "http://pulp-content:24816"  # override with the name workspaces use (PULP_CONTENT_ORIGIN)
MEDIA_ROOT = "/var/lib/pulp/media"  # the shared volume every API, content and worker container mounts
STORAGES = {
    "default": {"BACKEND": "pulpcore.app.models.storage.FileSystem", "OPTIONS": {"location": MEDIA_ROOT}},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT = "/var/lib/pulp/static"
WORKING_DIRECTORY = "/var/lib/pulp/tmp"
FILE_UPLOAD_TEMP_DIR = WORKING_DIRECTORY
ALLOWED_IMPORT_PATHS = ["/var/lib/pulp/imports"]
ALLOWED_EXPORT_PATHS = ["/var/lib/pulp/exports"]
ANALYTICS = False
# Files of a publication a distribution no longer serves stop being served at once (pulpcore's default keeps them
# 3 days, so a package a publish removed would stay installable): see docs/targets-pulp.md.
DISTRIBUTED_PUBLICATION_RETENTION_PERIOD = 0
