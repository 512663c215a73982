"""The Flask application: portal, add-in API, admin."""
