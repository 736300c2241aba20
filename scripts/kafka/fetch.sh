#!/usr/bin/env bash
# Fetches the Apache Kafka broker and tools jars (with their runtime dependencies) from Maven Central
# into .cache/kafka/libs. Idempotent: does nothing when the jars for the pinned version are there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
libs="${KAFKA_LIBS_DIR:-$root/.cache/kafka/libs}"
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")

if [ -f "$libs/kafka_2.13-$version.jar" ] && [ -f "$libs/kafka-tools-$version.jar" ]; then
  exit 0
fi
command -v mvn >/dev/null || { echo "fetch.sh: Maven (mvn) is required to fetch the Kafka jars" >&2; exit 1; }
command -v java >/dev/null || { echo "fetch.sh: Java 17 is required to run Kafka" >&2; exit 1; }
echo "fetching Apache Kafka $version jars from Maven Central into $libs" >&2
rm -rf "$libs.tmp"
mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs.tmp" >&2
rm -rf "$libs"
mv "$libs.tmp" "$libs"
