"""The local AWS sandbox: moto in server mode, extended to be faithful for what we promise."""
