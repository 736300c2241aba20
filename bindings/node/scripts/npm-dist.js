// Writes the npm packages in napi-rs's layout (make dist-node): `@kafkasender/<platform>` holding
// the prebuilt addon, with os/cpu/libc set so npm installs it only where it loads, and
// `kafkasender` (the JavaScript) naming it in optionalDependencies, with no install script.
// Usage: node scripts/npm-dist.js OUT_DIR PLATFORM=ADDON_PATH... ; each folder is `npm pack`ed into OUT_DIR.
'use strict'

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

// The platforms a prebuilt addon can be made for, as index.js names them.
const PLATFORMS = {
  'linux-x64-gnu': { os: ['linux'], cpu: ['x64'], libc: ['glibc'], title: 'Linux x64 (glibc)' },
}

const root = path.join(__dirname, '..')
const repository = path.join(root, '..', '..')
const main = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const [out, ...addons] = process.argv.slice(2)
if (!out || addons.length === 0) throw new Error('usage: npm-dist.js OUT_DIR PLATFORM=ADDON_PATH...')

// files: name → the path to copy it from, or { text } to write.
function writePackage(dir, manifest, files) {
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  for (const [name, from] of Object.entries(files)) {
    if (typeof from === 'string') fs.copyFileSync(from, path.join(dir, name))
    else fs.writeFileSync(path.join(dir, name), from.text)
  }
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n')
  execFileSync('npm', ['pack', '--silent', '--pack-destination', path.resolve(out)], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
}

const common = { version: main.version, license: main.license, repository: main.repository, homepage: main.homepage }
const optionalDependencies = {}
for (const argument of addons) {
  const [platform, addon] = argument.split('=')
  const target = PLATFORMS[platform]
  if (!target || !addon) throw new Error(`unknown platform or no addon: ${argument} (known: ${Object.keys(PLATFORMS)})`)
  const name = `@kafkasender/${platform}`
  const binary = `kafkasender.${platform}.node`
  writePackage(
    path.join(out, platform),
    { name, ...common, description: `kafkasender's native addon for ${target.title}`, os: target.os, cpu: target.cpu, libc: target.libc, main: binary, files: [binary] },
    {
      [binary]: addon,
      LICENSE: path.join(repository, 'LICENSE'),
      'README.md': {
        text:
          `# ${name}\n\nThe prebuilt native addon of kafkasender for ${target.title}. Install \`kafkasender\`, not this ` +
          'package: npm adds this one through its optionalDependencies where `os`, `cpu` and `libc` fit.\n',
      },
    },
  )
  optionalDependencies[name] = main.version
}

const javascript = main.files.filter((file) => !file.includes('*'))
writePackage(
  path.join(out, 'kafkasender'),
  {
    name: main.name, ...common, description: main.description, keywords: main.keywords, main: main.main, types: main.types,
    files: javascript, engines: main.engines, optionalDependencies,
    peerDependencies: main.peerDependencies, peerDependenciesMeta: main.peerDependenciesMeta,
  },
  {
    ...Object.fromEntries(javascript.map((file) => [file, path.join(root, file)])),
    LICENSE: path.join(repository, 'LICENSE'),
    'README.md': path.join(repository, 'README.md'),
  },
)
