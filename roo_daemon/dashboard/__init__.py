"""The dashboard: a single page served at ``/`` (sessions, tasks, a task's
live transcript, its asks, a continue box, its diff), from static files
shipped in the package: no CDN, no build step."""
