module kafkasender-example

go 1.22

require github.com/kafkasender/kafkasender-go v0.0.0

replace github.com/kafkasender/kafkasender-go => ../../bindings/go
