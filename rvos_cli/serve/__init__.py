"""`rvos serve`: a local web page that segments what sentences describe in an uploaded video.

Modules: `jobs` (the queue: one job at a time, states, progress, cancellation, old results removed),
`uploads` (checking a request before it is queued), `outputs` (writing a job's overlay MP4, browser
preview, mask PNG zip and predictions.json as frames stream in), `preview` (the WebM/VP9 or GIF preview),
`app` (the FastAPI routes and the JSON API), `server` (loading the model once and running uvicorn),
`static/` (the page: plain HTML, JS and CSS, nothing from the network).
"""
