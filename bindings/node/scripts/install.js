// Builds the native addon from source when no prebuilt one for this platform is here, so that
// `npm install ./bindings/node` works with nothing but the registries this repository uses.
'use strict'

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const addon = path.join(root, `kafkasender.${process.platform}-${process.arch}-gnu.node`)

if (fs.existsSync(addon) && !process.env.KAFKASENDER_REBUILD) {
  process.exit(0)
}
const workspace = path.join(root, '..', '..')
// The workspace's one target and profile (.cargo/config.toml): librdkafka is built once for all faces.
execFileSync('cargo', ['build', '--release', '-p', 'kafkasender-node'], { cwd: workspace, stdio: 'inherit' })
const built = path.join(workspace, 'target', 'x86_64-unknown-linux-gnu', 'release', 'libkafkasender_node.so')
fs.copyFileSync(built, addon)
