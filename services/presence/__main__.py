from services.presence.service import build
from shared.runtime.main import run_service

run_service("presence", build)
