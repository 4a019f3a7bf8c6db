import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManifestRefusedError, type ObjectRef } from '../../common/manifest.js';
import { hotFeatureClassifier, NOT_ONNX } from '../../test/helpers/onnx-models.js';
import { requireSelfContained } from '../download/model-checks.js';
import { loadSession } from '../inference/load-session.js';
import {
  addConstant,
  addInitializer,
  bytesField,
  graph,
  graphAttribute,
  ifSubgraph,
  int,
  model,
  msg,
  node,
  str,
  tensor,
  tensorAttribute,
  valueInfo,
} from '../../test/helpers/onnx-builder.js';
import { findExternalData, MAX_MESSAGE_DEPTH, OnnxFormatError } from './onnx-external-data.js';

const SHADOW = { location: '/etc/shadow', offset: 0, length: 8 };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeforge-onnx-checks-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let written = 0;
async function file(bytes: Buffer): Promise<string> {
  const path = join(dir, `model-${written++}.onnx`);
  await writeFile(path, bytes);
  return path;
}

const ref = (name: string): ObjectRef => ({ bucket: 'b', name, sha256: '0'.repeat(64), size: 1 });

describe('findExternalData', () => {
  it.each([
    ['an initializer', addInitializer],
    ['a Constant node', addConstant],
    ['an If subgraph', ifSubgraph],
  ])('accepts a self-contained model with %s, which ONNX Runtime loads', async (_, build) => {
    const path = await file(build());
    expect(await findExternalData(path)).toEqual({ tensors: [], count: 0 });
    // The models are real ONNX: the refusals below are of files ONNX Runtime would open.
    await (await loadSession(path)).release();
  });

  it('accepts the test classifiers', async () => {
    expect(await findExternalData(hotFeatureClassifier())).toEqual({ tensors: [], count: 0 });
  });

  it('finds an external initializer, its name, place and location', async () => {
    expect(await findExternalData(await file(addInitializer(SHADOW)))).toEqual({
      tensors: [
        {
          name: 'W',
          where: 'graph "main" > initializer "W"',
          externalData: { location: '/etc/shadow', offset: '0', length: '8' },
        },
      ],
      count: 1,
    });
  });

  it("finds a Constant node's external value", async () => {
    const scan = await findExternalData(addConstant({ location: '../../identity.json' }));
    expect(scan.tensors).toEqual([
      {
        name: '',
        where: 'graph "main" > node "const_c" (Constant) > attribute "value" > tensor #0',
        externalData: { location: '../../identity.json' },
      },
    ]);
  });

  it('finds an external tensor in an If subgraph', async () => {
    const scan = await findExternalData(ifSubgraph(SHADOW));
    expect(scan.count).toBe(1);
    expect(scan.tensors[0]?.where).toBe(
      'graph "main" > node "choose" (If) > attribute "then_branch" > graph "then" > ' +
        'node "then_const" (Constant) > attribute "value" > tensor #0',
    );
  });

  it('finds external tensors in sparse initializers, functions and attribute lists', async () => {
    const external = tensor({ name: 'v', external: SHADOW });
    const sparse = Buffer.concat([msg(1, external), msg(2, tensor({ name: 'i' })), int(3, 4)]);
    const fn = Buffer.concat([
      str(1, 'helper'),
      msg(7, node('Constant', [], ['k'], 'k_const', tensorAttribute('value', external))),
      str(10, 'custom'),
    ]);
    // AttributeProto.tensors (10): a list of tensors.
    const listAttribute = Buffer.concat([str(1, 'many'), msg(10, external), int(20, 9)]);
    const bytes = model(
      graph({
        name: 'main',
        nodes: [node('Custom', [], ['z'], 'custom', listAttribute)],
        sparseInitializers: [sparse],
        outputs: [valueInfo('z', [1])],
      }),
      [fn],
    );
    const scan = await findExternalData(bytes);
    expect(scan.count).toBe(3);
    expect(scan.tensors.map((t) => t.where)).toEqual([
      'graph "main" > node "custom" (Custom) > attribute "many" > tensor "v"',
      'graph "main" > sparse_initializer #0 > values "v"',
      'function "helper" > node "k_const" (Constant) > attribute "value" > tensor "v"',
    ]);
  });

  it('counts a tensor with only data_location EXTERNAL, or only external_data entries', async () => {
    const onlyLocation = Buffer.concat([str(8, 'a'), int(14, 1)]);
    const onlyEntries = Buffer.concat([str(8, 'b'), msg(13, str(1, 'location'), str(2, 'w.bin'))]);
    const defaultLocation = Buffer.concat([
      str(8, 'c'),
      int(14, 0),
      bytesField(9, Buffer.alloc(4)),
    ]);
    const scan = await findExternalData(
      model(graph({ name: 'g', initializers: [onlyLocation, onlyEntries, defaultLocation] })),
    );
    expect(scan.tensors.map((t) => [t.name, t.externalData])).toEqual([
      ['a', {}],
      ['b', { location: 'w.bin' }],
    ]);
  });

  it('seeks past large weights in a file and still finds what follows them', async () => {
    const big = tensor({ name: 'big', dims: [300_000], values: new Float32Array(300_000) });
    const bytes = model(
      graph({ name: 'main', initializers: [big, tensor({ name: 'after', external: SHADOW })] }),
    );
    expect(bytes.length).toBeGreaterThan(1_000_000);
    const scan = await findExternalData(await file(bytes));
    expect(scan.tensors.map((t) => t.name)).toEqual(['after']);
  });

  it('refuses truncated files cleanly, at every length', async () => {
    const bytes = ifSubgraph();
    const outcomes = new Set<string>();
    for (let length = 0; length < bytes.length; length++) {
      const outcome = await findExternalData(bytes.subarray(0, length)).then(
        () => 'accepted',
        (err: unknown) => {
          expect(err).toBeInstanceOf(OnnxFormatError);
          return 'refused';
        },
      );
      outcomes.add(outcome);
    }
    // A cut that falls between two top-level fields leaves a shorter, well-formed model.
    expect(outcomes.has('refused')).toBe(true);
    await expect(findExternalData(bytes.subarray(0, bytes.length - 3))).rejects.toThrow(
      /the file is truncated/,
    );
    const path = await file(bytes.subarray(0, 40));
    await expect(findExternalData(path)).rejects.toThrow(OnnxFormatError);
  });

  it('refuses garbage, never throwing anything but OnnxFormatError', async () => {
    await expect(findExternalData(NOT_ONNX)).rejects.toThrow(/protobuf group/);
    await expect(findExternalData(Buffer.alloc(0))).rejects.toThrow(/it has no graph/);
    await expect(findExternalData(Buffer.alloc(16, 0xff))).rejects.toThrow(
      /varint of more than 10 bytes/,
    );
    await expect(findExternalData(int(7, 3))).rejects.toThrow(
      /ModelProto field 7, graph \(a message\), has wire type 0, not 2/,
    );
    await expect(findExternalData(Buffer.from([0x07]))).rejects.toThrow(/field number 0/);
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 256;
    for (let i = 0; i < 500; i++) {
      const bytes = Buffer.from(Array.from({ length: 1 + (i % 64) }, random));
      await findExternalData(bytes).catch((err: unknown) =>
        expect(err).toBeInstanceOf(OnnxFormatError),
      );
    }
  });

  it('refuses subgraphs nested deeper than protobuf reads', async () => {
    const nested = (levels: number): Buffer => {
      let g = graph({ name: 'leaf' });
      for (let i = 0; i < levels; i++) {
        const attribute = graphAttribute('then_branch', g);
        g = graph({ name: `g${i}`, nodes: [node('If', ['c'], ['y'], `if${i}`, attribute)] });
      }
      return model(g);
    };
    // The model, its graph, then node > attribute > graph: three messages per level.
    await expect(findExternalData(nested(32))).resolves.toEqual({ tensors: [], count: 0 });
    await expect(findExternalData(nested(Math.ceil(MAX_MESSAGE_DEPTH / 3)))).rejects.toThrow(
      /nested more than 100 deep/,
    );
  });
});

describe('requireSelfContained', () => {
  it('refuses external data with the tensor, its location and the fix', async () => {
    const refused = await requireSelfContained(
      await file(addInitializer(SHADOW)),
      ref('test/abc'),
    ).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(ManifestRefusedError);
    expect(refused).toMatchObject({ reason: 'external_data' });
    expect((refused as Error).message).toBe(
      'external_data: test/abc keeps tensor "W" (graph "main" > initializer "W") in an ' +
        'external file, location "/etc/shadow", offset 0, length 8; the device loads only ' +
        'self-contained models, never a path a model names: re-export with the weights inside ' +
        'the file: onnx.save(model, path, save_as_external_data=False)',
    );
  });

  it('refuses a file that is not ONNX as not_onnx, and passes a self-contained one', async () => {
    await expect(requireSelfContained(await file(NOT_ONNX), ref('test/t'))).rejects.toMatchObject({
      reason: 'not_onnx',
      message: expect.stringMatching(
        /^not_onnx: test\/t is not a model ONNX Runtime can load: it is not well-formed ONNX \(at byte 0: /,
      ) as unknown,
    });
    await expect(requireSelfContained(await file(ifSubgraph()), ref('x'))).resolves.toBeUndefined();
  });
});
