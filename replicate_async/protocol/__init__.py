"""Sans-I/O: every rule of Replicate's protocol as plain code, tested without a network.

Nothing in this package opens a socket, reads a file, sleeps or reads a clock: it
imports neither aiohttp nor aiofiles nor asyncio (``tests/unit/test_layout.py`` checks
it). Functions take the time as an argument and return decisions; the I/O modules beside
this package (``_session``, ``_transport``, ``files``, ``streaming``...) carry them out.

- ``replies``: what a reply (or a transport failure) means: :class:`~.replies.Outcome`
- ``retry``: whether to try again and after how long; the one backoff formula
- ``limits``: token-bucket arithmetic and the controller that follows the server
- ``polling``: when to poll again and when a wait is over
- ``creates``: a create's options, its body and headers, and finding a lost create
- ``refs``: model references into create targets
- ``sse``: the server-sent events decoder
- ``convert``: the cattrs converter for the API's JSON
"""
