"""A scripted HTTP/1.1 server on 127.0.0.1 for tests of HTTP clients (imported by test code
only): it reads each request (head and Content-Length body), records it and writes the raw
answer the script gives for that request number."""

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

# request number (0-based) -> raw answer bytes; b"" = hang, None = close without answering
Answer = Callable[[int], bytes | None]


def ok(n: int) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class LoopbackServer:
    answer: Answer
    ssl_context: ssl.SSLContext | None = None
    port: int = 0
    connections: int = 0
    open_now: int = 0
    most_open: int = 0  # connections open at the same time, at most
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # (head, body)
    close_after_each: bool = False
    _server: asyncio.Server | None = None

    async def start(self) -> "LoopbackServer":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length)
                n = len(self.requests)
                self.requests.append((head, body))
                raw = self.answer(n)
                if raw is None:
                    break
                if not raw:
                    await asyncio.sleep(30)
                writer.write(raw)
                await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def sent_headers(self, n: int) -> tuple[str, dict[str, str]]:
        """Request `n`'s request line and its headers (lowercase names)."""
        lines = self.requests[n][0].decode("latin-1").split("\r\n")
        pairs = (line.partition(":") for line in lines[1:] if line)
        return lines[0], {k.lower(): v.strip() for k, _, v in pairs}
