package backups

// The bounds of a run's chunk uploads, for the tests.
const (
	UploadWorkers = uploadWorkers
	UploadLarge   = uploadLarge
	UploadMemory  = uploadMemory
	SmallChunk    = smallChunk
)
