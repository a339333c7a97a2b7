"""moto's server, answering one request at a time: `python moto_serial.py HOST PORT`.

Real DynamoDB applies each TransactWriteItems atomically. moto's threaded server does not: a
failing transaction restores a snapshot of the whole table and can undo another request's
committed write, which made the concurrent-rotation tests flaky. Serialising requests makes the
emulator behave like the real service for our tests (the SDK clients still run concurrently).
"""
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

host, port = sys.argv[1], int(sys.argv[2])
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()


def serialized(environ, start_response):
    with lock:
        return list(app(environ, start_response))


run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)
