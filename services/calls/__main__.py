from services.calls.service import build
from shared.runtime.main import run_service

run_service("calls", build)
