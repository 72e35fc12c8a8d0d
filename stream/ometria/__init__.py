"""Ometria push API: record models, the contact mapping, and the HTTP client."""
