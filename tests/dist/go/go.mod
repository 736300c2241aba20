module kafkasender-dist-check

go 1.22

require github.com/kafkasender/kafkasender-go v0.1.0

// make test-dist-go copies the module from dist/ next to this folder, outside the repository.
replace github.com/kafkasender/kafkasender-go => ../kafkasender-go
