import threading

from .server import main

threading.current_thread().name = "fake-zoom"
main()
