package backups

// The bounds of a run's chunk uploads, for the tests.
const (
	UploadWorkers = uploadWorkers
	UploadMemory  = uploadMemory
)
