# One image per service: docker build --build-arg SERVICE=billing -f deploy/docker/service.Dockerfile .
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /usr/local/bin/uv
ARG SERVICE
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY services services
RUN uv sync --frozen --no-dev --package genhub-${SERVICE}

FROM python:3.11-slim
ARG SERVICE
ENV SERVICE=${SERVICE} PATH=/app/.venv/bin:$PATH HTTP_HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app /app
RUN useradd --system --uid 10001 genhub
USER genhub
CMD ["sh", "-c", "genhub-${SERVICE} migrate && exec genhub-${SERVICE} serve"]
