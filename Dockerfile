FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared shared
COPY services services
COPY deploy deploy
RUN pip install --no-cache-dir .
ENV PYTHONUNBUFFERED=1
# Production: every secret must come from the environment (see `points secrets`).
ENV POINTS_ENV=prod
