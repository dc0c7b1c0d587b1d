"""The workers: Huey tasks that turn spooled objects into storescp's output."""
