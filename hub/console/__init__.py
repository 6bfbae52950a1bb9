"""The officials' console: pages in Simplified Chinese (English with ``?lang=en``)."""
