# Two stages: the first builds the virtualenv from the lock (with a compiler at hand for any wheel
# that needs one); the second is the slim runtime with that virtualenv only, run as a plain user.
FROM python:3.11-slim AS build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The lock first: its layer is reused while only the code changes.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY shared shared
COPY services services
COPY deploy deploy
RUN pip install --no-cache-dir --no-deps .

FROM python:3.11-slim
# A fixed uid, so a volume's ownership means the same on every host.
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin points
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Production: every secret must come from the environment (see `points secrets`).
ENV POINTS_ENV=prod
USER points
