"""The laptop stack: local stand-ins for AWS, the Celery worker and the HTTP gateway."""
