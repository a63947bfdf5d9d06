"""The sandbox's routes, one router per area of NetValve's API, plus its own controls."""
