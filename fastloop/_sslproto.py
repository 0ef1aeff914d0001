"""asyncio's SSLProtocol with its data path in C (src/tls.c).

The handshake, shutdown, timeouts and errors are asyncio's own code; while
a connection is WRAPPED, feeding the incoming MemoryBIO, reading plaintext
into the application protocol and flushing ciphertext to the transport are
C functions that do what asyncio's _do_read/_do_write/_process_outgoing do.
"""

from asyncio import sslproto

from . import _core



class _SSLProtocolTransport(sslproto._SSLProtocolTransport):
    pass


class SSLProtocol(sslproto.SSLProtocol):

    def _get_app_transport(self):
        if self._app_transport is None:
            if self._app_transport_created:
                raise RuntimeError("Creating _SSLProtocolTransport twice")
            self._app_transport = _SSLProtocolTransport(self._loop, self)
            self._app_transport_created = True
        return self._app_transport


_methods = _core._tls_methods(SSLProtocol)
_SSLProtocolTransport.write = _methods["write"]
SSLProtocol.get_buffer = _methods["get_buffer"]
SSLProtocol.buffer_updated = _methods["buffer_updated"]
SSLProtocol._write_appdata = _methods["_write_appdata"]
