"""Pydantic shapes: request validation for the API and the forms, response serialization, OpenAPI."""
