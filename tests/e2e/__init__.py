"""End-to-end tests: the real client against the emulator over real sockets."""
