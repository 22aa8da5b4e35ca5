from services.help.service import build
from shared.runtime.main import run_service

if __name__ == "__main__":
    run_service("help", build)
