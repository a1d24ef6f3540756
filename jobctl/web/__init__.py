"""The daemon's web side: the REST API (`/api/v1/...`), the dashboard (`/`) and who may use
them (the API token, login links, sessions). Mounted on the listener's aiohttp application by
`jobctl.web.app.install`; everything here reads and writes through the store, never the
daemon itself.
"""
