"""The HTTP edge: Litestar app factory, controllers, schemas and the error table."""
