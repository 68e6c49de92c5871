# UNTESTED: nothing in this repository builds or runs this image (no Docker in CI here).
# `maxsim serve` in a container, on the CPU:
#   docker build -t maxsim-serve .
#   docker run -p 8080:8080 -e MAXSIM_API_KEY=... -v ~/.cache/huggingface:/root/.cache/huggingface maxsim-serve
# The default model, jinaai/jina-colbert-v2, is licensed CC BY-NC 4.0 (non-commercial use only).
FROM python:3.11-slim

WORKDIR /app
RUN pip install --no-cache-dir torch --index-url https://download.pytorch.org/whl/cpu
COPY core /app/core
RUN pip install --no-cache-dir "/app/core[server]"

ENV MAXSIM_MODEL=jinaai/jina-colbert-v2
EXPOSE 8080
# Inside a container the server must bind to all interfaces to be reachable; keep an API key.
CMD ["sh", "-c", "exec maxsim serve --model \"$MAXSIM_MODEL\" --host 0.0.0.0 --port 8080"]
