FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 portal
WORKDIR /app
COPY pyproject.toml ./
RUN pip install --no-cache-dir . && rm -rf /root/.cache
COPY --chown=portal:portal . .
RUN BREAKGLASS_VAR_DIR=/tmp/build python manage.py collectstatic --no-input -v 0
USER portal
EXPOSE 8000
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
