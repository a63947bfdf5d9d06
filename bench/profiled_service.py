"""The service under pyinstrument: `python -m bench.profiled_service <session file> <port>`.

The same app and server as `uvicorn --factory app.main:create_app --no-server-header` (uvloop
included), with the profiler started after the app is built, so start-up is not in the profile,
and set up to show where the CPU goes:

- plain mode (async_mode="disabled"): no await time is charged to the awaiting coroutine;
- timed by the main thread's CPU clock. pyinstrument samples on Python call and return events
  and charges the time since the previous sample to the current stack. With a wall clock, time
  spent waiting in uvloop's C loop, or descheduled on a busy machine (a `socket.send` that wakes
  the receiver is preempted), would be charged to whatever Python code runs next. With the CPU
  clock a sample weighs what the thread really computed.

The CPU clock costs a system call per event, which slows the service three- to four-fold and
weighs call-heavy Python code a little more than code that spends its time in C; the ranking of
hot spots holds, the absolute seconds do not.
"""

import sys
import time
from pathlib import Path

import uvicorn
from pyinstrument import Profiler
from pyinstrument.stack_sampler import get_stack_sampler


def main() -> None:
    output, port = Path(sys.argv[1]), int(sys.argv[2])
    from app.main import create_app

    application = create_app()
    get_stack_sampler().timer_func = time.thread_time
    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    try:
        uvicorn.run(application, host="127.0.0.1", port=port, server_header=False)
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the SIGINT it handled; its shutdown is done
    finally:
        session = profiler.stop()
        session.save(output)


if __name__ == "__main__":
    main()
