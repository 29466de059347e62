"""`image-gen gallery`: the history as a page of pictures, served on 127.0.0.1 or exported as a folder.

`server` serves it (loopback only, a token in the URL, other Host headers refused), `export` writes the
same page as static files, `cards` turns history rows into what the page shows, `thumbs` keeps the
thumbnails. The page itself (page.html, app.js, app.css) needs nothing from outside: no CDN, no font.
"""
