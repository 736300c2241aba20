module github.com/kafkasender/kafkasender-go

go 1.22
