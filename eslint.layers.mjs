// The layering rule (as VS Code's "code-layering"): every source file belongs to a layer by its
// path, and may import only modules of the layers its layer allows. The layers themselves are
// configured in eslint.config.mjs; this file is only the mechanism.
//
// Options: { root, layers: [{ name, paths, may, hint }] }
//   root   the project directory the paths are relative to (default: ESLint's working directory).
//   paths  folder prefixes ("electron/engine/") or module paths without extension ("electron/main");
//          a file's layer is the one with the longest match. Files in no layer are not checked.
//   may    names of the layers whose modules this layer may import (its own is always allowed).
//   hint   what to say when an import breaks the rule.
// Every relative import is resolved against the importing file: import, export … from, import(),
// require(), also type-only imports (a type import upwards is still a dependency upwards).
// Package imports ('valibot', 'node:fs') are left to no-restricted-imports.
import * as path from 'node:path';

const EXTENSION = /\.(?:d\.)?[cm]?[jt]sx?$/;

function layerOf(layers, relativePath) {
  const module = relativePath.split(path.sep).join('/').replace(EXTENSION, '');
  let best;
  for (const layer of layers) {
    for (const p of layer.paths) {
      const hit = p.endsWith('/') ? module.startsWith(p) : module === p;
      if (hit && (!best || p.length > best.length)) best = { layer, length: p.length };
    }
  }
  return best?.layer;
}

/** @type {import('eslint').Rule.RuleModule} */
export const layersRule = {
  meta: {
    type: 'problem',
    docs: { description: 'Modules import only their own layer and the layers below it (DEVELOPERS.md, "Layering").' },
    schema: [{
      type: 'object',
      properties: {
        root: { type: 'string' },
        layers: {
          type: 'array',
          items: {
            type: 'object',
            properties: { name: { type: 'string' }, paths: { type: 'array', items: { type: 'string' } }, may: { type: 'array', items: { type: 'string' } }, hint: { type: 'string' } },
            required: ['name', 'paths', 'may'],
            additionalProperties: false,
          },
        },
      },
      required: ['layers'],
      additionalProperties: false,
    }],
    messages: {
      upwards: '{{from}} ({{fromLayer}}) must not import {{to}} ({{toLayer}}): {{hint}}',
    },
  },
  create(context) {
    const { layers, root } = context.options[0];
    const cwd = root ?? context.cwd;
    const file = context.filename;
    const from = layerOf(layers, path.relative(cwd, file));
    if (!from) return {};

    function check(node, source) {
      if (typeof source !== 'string' || !source.startsWith('.')) return;
      const target = path.relative(cwd, path.resolve(path.dirname(file), source));
      const to = layerOf(layers, target);
      if (!to || to === from || from.may.includes(to.name)) return;
      context.report({
        node,
        messageId: 'upwards',
        data: {
          from: path.relative(cwd, file).split(path.sep).join('/'),
          fromLayer: from.name,
          to: target.split(path.sep).join('/'),
          toLayer: to.name,
          hint: from.hint ?? 'layers import only downwards (DEVELOPERS.md, "Layering")',
        },
      });
    }

    return {
      ImportDeclaration: (node) => check(node.source, node.source.value),
      ExportNamedDeclaration: (node) => node.source && check(node.source, node.source.value),
      ExportAllDeclaration: (node) => check(node.source, node.source.value),
      ImportExpression: (node) => node.source.type === 'Literal' && check(node.source, node.source.value),
      TSImportEqualsDeclaration: (node) => node.moduleReference.type === 'TSExternalModuleReference' && check(node.moduleReference.expression, node.moduleReference.expression.value),
      CallExpression(node) {
        const [arg] = node.arguments;
        if (node.callee.type === 'Identifier' && node.callee.name === 'require' && arg?.type === 'Literal') check(arg, arg.value);
      },
    };
  },
};
