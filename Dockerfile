# One image for the API, the workers and migrations. Build with a CUDA torch for GPU hosts:
#   docker build --build-arg TORCH_SPEC="torch==2.13.0" -t lorafleet .
FROM python:3.11-slim
ARG TORCH_SPEC="torch==2.13.0"
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY api api
COPY models models
COPY migrations migrations
COPY worker worker
COPY lorafleet_cli lorafleet_cli
COPY lorafleet_demo lorafleet_demo
COPY bench bench
RUN pip install --no-cache-dir "$TORCH_SPEC" && pip install --no-cache-dir ".[worker]"
ENV LORAFLEET_DATA_DIR=/data
EXPOSE 8000
CMD ["lorafleet", "api", "--port", "8000"]
