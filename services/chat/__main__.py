from services.chat.service import build
from shared.runtime.main import run_service

run_service("chat", build)
