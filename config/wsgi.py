import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

if settings.LABEL_STUDIO_ATTACHED:
    from config.labelstudio.checks import verify_tables

    verify_tables()  # refuse to serve, naming what is missing, when Label Studio's tables are not usable
