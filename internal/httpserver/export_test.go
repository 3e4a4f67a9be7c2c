package httpserver

// DeviceName exposes deviceName to the external tests.
var DeviceName = deviceName
