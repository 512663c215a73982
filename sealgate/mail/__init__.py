"""MIME in and out: parsing, triggers, notification building. Pure: values in, values out."""
