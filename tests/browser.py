"""Headless Chromium for tests: open a local page, screenshot it, report broken images and console errors.

Talks to Debian's `chromium` over the DevTools protocol (CDP) with a minimal stdlib WebSocket
client (RFC 6455, text frames), so the tests need no browser-automation package.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
OPCODE_CONTINUATION, OPCODE_TEXT, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x0, 0x1, 0x8, 0x9, 0xA

CHROMIUM_FLAGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-extensions',
    '--disable-dev-shm-usage',
    '--hide-scrollbars',
    '--remote-debugging-port=0',
    # Chromium ≥ 111 rejects WebSocket clients that send an Origin it does not allow; ours sends none,
    # but say so explicitly in case a build checks differently.
    '--remote-allow-origins=*',
]

# Waits (in the page) until every <img> has loaded or failed, at most `timeout` ms, then lists them.
IMAGES_SCRIPT = """
(async (timeout) => {
  const images = Array.from(document.images);
  const settled = img => img.complete ? Promise.resolve() :
    new Promise(resolve => { img.addEventListener('load', resolve); img.addEventListener('error', resolve); });
  await Promise.race([Promise.all(images.map(settled)), new Promise(r => setTimeout(r, timeout))]);
  return images.map(img => ({
    src: img.getAttribute('src'), currentSrc: img.currentSrc, alt: img.getAttribute('alt'),
    complete: img.complete, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
  }));
})
"""


def find_chromium() -> str | None:
    """Path of the Chromium executable on PATH, or None."""
    for name in ('chromium', 'chromium-browser'):
        path = shutil.which(name)
        if path:
            return path
    return None


class WebSocket:
    """A blocking WebSocket client for one `ws://` URL: text messages only, client frames masked."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        if not url.startswith('ws://'):
            raise ValueError(f'WebSocket: expected a ws:// URL, got {url!r}')
        host_port, _, path = url.removeprefix('ws://').partition('/')
        host, _, port = host_port.rpartition(':')
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._buffer = bytearray()
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f'GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
            f'Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n'
        )
        self.sock.sendall(request.encode())
        head = self._read_until(b'\r\n\r\n').decode('latin-1')
        status, *header_lines = head.split('\r\n')
        if ' 101 ' not in f'{status} ':
            raise ConnectionError(f'WebSocket handshake with {url} failed: {status!r}')
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(':') for line in header_lines if line)}
        expected = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        if headers.get('sec-websocket-accept') != expected:
            raise ConnectionError(f'WebSocket handshake with {url}: bad Sec-WebSocket-Accept')

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError('WebSocket: connection closed by the browser')
        self._buffer += chunk

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError('WebSocket: connection closed during the handshake')
            self._buffer += chunk
        data, _, rest = self._buffer.partition(marker)
        self._buffer = bytearray(rest)
        return bytes(data)

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytearray([0x80 | opcode])  # FIN + opcode
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack('!H', n)
        else:
            header += bytes([0x80 | 127]) + struct.pack('!Q', n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes(header) + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(OPCODE_TEXT, text.encode())

    def _next_frame(self) -> tuple[bool, int, bytes]:
        """(fin, opcode, payload) of the next frame, consumed only once it has fully arrived.

        A timeout while waiting leaves the buffer intact, so the next call carries on.
        """
        while True:
            frame = self._parse_frame()
            if frame is not None:
                return frame
            self._fill()

    def _parse_frame(self) -> tuple[bool, int, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        fin, opcode, masked, n = bool(buffer[0] & 0x80), buffer[0] & 0x0F, buffer[1] & 0x80, buffer[1] & 0x7F
        offset = 2
        if n in (126, 127):
            size = 2 if n == 126 else 8
            if len(buffer) < offset + size:
                return None
            (n,) = struct.unpack('!H' if size == 2 else '!Q', buffer[offset : offset + size])
            offset += size
        mask = b''
        if masked:
            mask = buffer[offset : offset + 4]
            offset += 4
        if len(buffer) < offset + n:
            return None
        payload = bytes(buffer[offset : offset + n])
        del buffer[: offset + n]
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return fin, opcode, payload

    def receive(self) -> str:
        """The next whole text message (answering pings on the way)."""
        parts: list[bytes] = []
        while True:
            fin, opcode, payload = self._next_frame()
            if opcode == OPCODE_PING:
                self._send_frame(OPCODE_PONG, payload)
            elif opcode == OPCODE_CLOSE:
                raise ConnectionError('WebSocket: the browser closed the connection')
            elif opcode in (OPCODE_TEXT, OPCODE_CONTINUATION):
                parts.append(payload)
                if fin:
                    return b''.join(parts).decode()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send_frame(OPCODE_CLOSE, struct.pack('!H', 1000))
        self.sock.close()


class CDPError(RuntimeError):
    """A DevTools command failed."""


class DevTools:
    """DevTools protocol over one WebSocket: commands with ids, events kept until asked for."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.ws = WebSocket(url, timeout=timeout)
        self.timeout = timeout
        self._next_id = 0
        self.events: deque[dict[str, Any]] = deque()

    def send(self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None) -> dict:
        """Run a command; return its result, keeping any events that arrive meanwhile."""
        self._next_id += 1
        message: dict[str, Any] = {'id': self._next_id, 'method': method, 'params': params or {}}
        if session_id is not None:
            message['sessionId'] = session_id
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.receive())
            if reply.get('id') == self._next_id:
                if 'error' in reply:
                    raise CDPError(f'{method}: {reply["error"]}')
                return reply['result']
            if 'method' in reply:
                self.events.append(reply)

    def wait_for(self, method: str, timeout: float) -> dict:
        """The first event named `method` (earlier events are kept)."""
        for event in self.events:
            if event['method'] == method:
                return event
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.ws.sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    event = json.loads(self.ws.receive())
                except TimeoutError:
                    break
                if 'method' in event:
                    self.events.append(event)
                    if event['method'] == method:
                        return event
        finally:
            self.ws.sock.settimeout(self.timeout)
        raise TimeoutError(f'no {method} event within {timeout} s')

    def drain(self, seconds: float) -> None:
        """Collect events for `seconds` (late console errors, say)."""
        with contextlib.suppress(TimeoutError):
            self.wait_for('<none>', seconds)

    def close(self) -> None:
        self.ws.close()


@dataclass
class PageReport:
    """What one page load produced."""

    url: str
    screenshot: Path
    images: list[dict[str, Any]]
    """Each `<img>`: src, currentSrc, alt, complete, naturalWidth, naturalHeight."""
    errors: list[str] = field(default_factory=list)
    """Console errors, uncaught exceptions and browser error log entries (e.g. a failed image load)."""
    requests: list[str] = field(default_factory=list)
    """Every URL the page requested."""

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        return [img for img in self.images if not (img['complete'] and img['naturalWidth'] > 0)]


def _describe_console(params: dict[str, Any]) -> str:
    args = [str(arg.get('value', arg.get('description', arg.get('type')))) for arg in params.get('args', [])]
    return f'console.{params["type"]}: {" ".join(args)}'


def _describe_exception(params: dict[str, Any]) -> str:
    details = params['exceptionDetails']
    exception = details.get('exception') or {}
    return f'uncaught: {exception.get("description") or details.get("text")}'


class Chromium:
    """A headless Chromium process with a fresh profile; use as a context manager."""

    def __init__(self, executable: str, work_dir: Path | None = None, timeout: float = 30.0) -> None:
        self.executable = executable
        self.timeout = timeout
        self._own_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix='chromium-')) if work_dir is None else work_dir
        self.profile = self.work_dir / 'profile'
        self.log_path = self.work_dir / 'chromium.log'
        self.process: subprocess.Popen | None = None
        self.devtools: DevTools | None = None

    def __enter__(self) -> Chromium:
        self.profile.mkdir(parents=True, exist_ok=True)
        with self.log_path.open('wb') as log_file:
            self.process = subprocess.Popen(
                [self.executable, *CHROMIUM_FLAGS, f'--user-data-dir={self.profile}', 'about:blank'],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so its helpers end with it
            )
        try:
            self.devtools = DevTools(self._browser_url(), timeout=self.timeout)
        except BaseException:
            self._stop()
            raise
        return self

    def _browser_url(self) -> str:
        """The browser's WebSocket URL, from the DevToolsActivePort file (port, then path)."""
        assert self.process is not None
        port_file = self.profile / 'DevToolsActivePort'
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f'chromium exited with {self.process.returncode}: {self._log_tail()}')
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) == 2:
                return f'ws://127.0.0.1:{lines[0]}{lines[1]}'
            time.sleep(0.05)
        raise TimeoutError(f'chromium wrote no {port_file.name} within {self.timeout} s: {self._log_tail()}')

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors='replace')[-2000:] if self.log_path.exists() else ''

    def __exit__(self, *exc_info: object) -> None:
        if self.devtools is not None:
            with contextlib.suppress(Exception):
                self.devtools.send('Browser.close')
            self.devtools.close()
        self._stop()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def _stop(self) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def open(
        self,
        path: Path,
        screenshot: Path,
        color_scheme: str = 'light',
        width: int = 1280,
        height: int = 2000,
        settle: float = 0.3,
    ) -> PageReport:
        """Load a local file in a new tab with `prefers-color-scheme: color_scheme`; screenshot the whole page.

        The viewport is `width` wide and at least `height` tall, grown to the page's full height
        before images are checked (so lazily loaded images load too) and again for the screenshot.
        """
        if color_scheme not in ('light', 'dark'):
            raise ValueError(f"color_scheme must be 'light' or 'dark', got {color_scheme!r}")
        assert self.devtools is not None, 'use Chromium as a context manager'
        cdp = self.devtools
        url = path.resolve().as_uri()
        target = cdp.send('Target.createTarget', {'url': 'about:blank'})['targetId']
        session = cdp.send('Target.attachToTarget', {'targetId': target, 'flatten': True})['sessionId']
        try:
            for domain in ('Page', 'Runtime', 'Log', 'Network'):
                cdp.send(f'{domain}.enable', session_id=session)
            cdp.send(
                'Emulation.setEmulatedMedia',
                {'features': [{'name': 'prefers-color-scheme', 'value': color_scheme}]},
                session,
            )
            metrics = {'width': width, 'height': height, 'deviceScaleFactor': 1, 'mobile': False}
            cdp.send('Emulation.setDeviceMetricsOverride', metrics, session)
            cdp.events.clear()
            navigation = cdp.send('Page.navigate', {'url': url}, session)
            if navigation.get('errorText'):
                raise RuntimeError(f'could not open {url}: {navigation["errorText"]}')
            cdp.wait_for('Page.loadEventFired', self.timeout)

            full_height = self._evaluate(session, 'document.documentElement.scrollHeight')
            cdp.send('Emulation.setDeviceMetricsOverride', {**metrics, 'height': max(height, full_height)}, session)
            images = self._evaluate(session, f'{IMAGES_SCRIPT}({int(self.timeout * 1000)})')
            cdp.drain(settle)
            # Images have their sizes now: grow the viewport to the whole page for the screenshot.
            full_height = self._evaluate(session, 'document.documentElement.scrollHeight')
            cdp.send('Emulation.setDeviceMetricsOverride', {**metrics, 'height': max(height, full_height)}, session)
            shot = cdp.send('Page.captureScreenshot', {'format': 'png', 'captureBeyondViewport': True}, session)
            screenshot.write_bytes(base64.b64decode(shot['data']))
            cdp.drain(0.05)
        finally:
            cdp.send('Target.closeTarget', {'targetId': target})

        report = PageReport(url=url, screenshot=screenshot, images=images)
        for event in cdp.events:
            if event.get('sessionId') != session:
                continue
            method, params = event['method'], event['params']
            if method == 'Runtime.consoleAPICalled' and params['type'] in ('error', 'assert'):
                report.errors.append(_describe_console(params))
            elif method == 'Runtime.exceptionThrown':
                report.errors.append(_describe_exception(params))
            elif method == 'Log.entryAdded' and params['entry']['level'] == 'error':
                entry = params['entry']
                report.errors.append(f'{entry["source"]}: {entry["text"]} {entry.get("url", "")}'.strip())
            elif method == 'Network.requestWillBeSent':
                report.requests.append(params['request']['url'])
        cdp.events.clear()
        return report

    def _evaluate(self, session: str, expression: str) -> Any:
        assert self.devtools is not None
        result = self.devtools.send(
            'Runtime.evaluate', {'expression': expression, 'awaitPromise': True, 'returnByValue': True}, session
        )
        if 'exceptionDetails' in result:
            raise CDPError(f'evaluating {expression[:60]!r}: {_describe_exception(result)}')
        return result['result'].get('value')
