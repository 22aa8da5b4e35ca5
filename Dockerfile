# One image for the gateway and every service; the command picks the process.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY tools ./tools
RUN pip install .
RUN useradd --create-home --uid 1000 im && mkdir -p /data && chown im /data
USER im
ENV IM_DATA_DIR=/data
CMD ["python", "-m", "services.gateway"]
