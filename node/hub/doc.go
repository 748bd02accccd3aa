// Package hub downloads and publishes model repositories on the HuggingFace
// Hub, sharing huggingface_hub's on-disk cache so Python tools and dtrain see
// the same files.
//
// A Client resolves a revision to its commit, downloads files into the cache
// layout huggingface_hub uses ({cache}/models--{org}--{name}/blobs/{etag},
// snapshots/{sha}/{path} as relative symlinks into blobs, refs/{revision}
// holding the sha), uploads a directory as one commit (small files inline,
// large ones through Git LFS), tags commits, and finds the newest
// "{run}.{epoch}" tag, the public record of a dtrain run.
//
// Endpoints used (relative to the endpoint, default https://huggingface.co):
//
//	GET  /api/models/{repo}/revision/{revision}     commit sha and file list
//	HEAD /{repo}/resolve/{sha}/{path}               X-Repo-Commit, ETag / X-Linked-Etag, size
//	GET  /{repo}/resolve/{sha}/{path}               file bytes (redirects followed)
//	POST /api/repos/create                          create a model repo (409 = exists)
//	POST /api/models/{repo}/preupload/{revision}    regular or LFS upload mode per file
//	POST /{repo}.git/info/lfs/objects/batch         Git LFS batch API, operation "upload"
//	PUT  {actions.upload.href}                      LFS bytes (no Hub token sent off-host)
//	POST {actions.verify.href}                      LFS verify, when the server asks
//	POST /api/models/{repo}/commit/{revision}       NDJSON commit: header, file, lfsFile lines
//	POST /api/models/{repo}/tag/{revision}          create a tag (409 = ErrTagExists)
//	GET  /api/models/{repo}/refs                    branches and tags
//
// Every request runs under a deadline; a token, when set, is sent as
// "Authorization: Bearer" to the endpoint's host only. Metadata GETs and HEADs
// are retried with backoff on 429, 5xx and transport errors; JSON replies are
// read up to a fixed size.
package hub
