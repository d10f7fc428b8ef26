import { describe, expect, it } from 'vitest'
import { compareFloatArrays, parseNpy, parseRawFloat32, type FloatArray } from '../src/index.ts'
import { npy, rawF32 } from './support/files.ts'

// Written by numpy 2.4 (np.save / np.lib.format.write_array), so the parser is checked
// against the real writer, not only against our own test encoder.
const NUMPY = {
  v1f4: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAMA/AAAQwFnZADMAAMB/AACAfwAAAAA=',
  v2f8: 'k05VTVBZAgB0AAAAeydkZXNjcic6ICc8ZjgnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMywgMiksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAJqZmZmZmbk/mpmZmZmZyT80MzMzMzPTP5qZmZmZmdk/AAAAAAAA4D8=',
  bigEndian:
    'k05VTVBZAQB2AHsnZGVzY3InOiAnPmY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAo/gAAAQAAAAA==',
  fortran:
    'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBUcnVlLCAnc2hhcGUnOiAoMiwgMyksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAIA/AACAPwAAgD8AAIA/AACAPwAAgD8=',
  int64:
    'k05VTVBZAQB2AHsnZGVzY3InOiAnPGk4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAAEAAAAAAAAAAgAAAAAAAAA=',
  scalar:
    'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAEQA==',
}
const b64 = (s: string): Buffer => Buffer.from(s, 'base64')
const invalid = (reason: RegExp) =>
  expect.objectContaining({ kind: 'PAYLOAD_INVALID', message: expect.stringMatching(reason) })
const arr = (values: number[], shape = [values.length]): FloatArray => ({
  dtype: 'float64',
  shape,
  values: Float64Array.from(values),
})
const tol = { rtol: 1e-5, atol: 1e-8, nan: 'equal' as const }

describe('parseNpy', () => {
  it('reads numpy format 1.0 float32 with shape, NaN and infinity', () => {
    const a = parseNpy(b64(NUMPY.v1f4))
    expect(a.dtype).toBe('float32')
    expect(a.shape).toEqual([2, 3])
    expect(Array.from(a.values)).toEqual([1.5, -2.25, Math.fround(3e-8), NaN, Infinity, 0])
  })

  it('reads numpy format 2.0 float64 and 0-d arrays', () => {
    const a = parseNpy(b64(NUMPY.v2f8))
    expect(a).toMatchObject({ dtype: 'float64', shape: [3, 2] })
    expect(Array.from(a.values)).toEqual([0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5])
    expect(parseNpy(b64(NUMPY.scalar))).toMatchObject({ shape: [], values: Float64Array.from([2.5]) })
  })

  it('reads what our own writer produces, version 1 and 2', () => {
    expect(Array.from(parseNpy(npy([1, 2, 3, 4], { shape: [2, 2], version: 2 })).values)).toEqual([1, 2, 3, 4])
    expect(parseNpy(npy([0.5], { dtype: '<f8' })).dtype).toBe('float64')
  })

  it('refuses big-endian, Fortran order, integers and unknown versions by name', () => {
    expect(() => parseNpy(b64(NUMPY.bigEndian))).toThrowError(invalid(/dtype '>f4' is not supported/))
    expect(() => parseNpy(b64(NUMPY.fortran))).toThrowError(invalid(/Fortran-order/))
    expect(() => parseNpy(b64(NUMPY.int64))).toThrowError(invalid(/dtype '<i8'/))
    const v9 = npy([1])
    v9[6] = 9
    expect(() => parseNpy(v9)).toThrowError(invalid(/version 9/))
  })

  it('refuses a file whose data does not fit its shape, and a non-npy file', () => {
    expect(() => parseNpy(npy([1, 2, 3]).subarray(0, -1))).toThrowError(invalid(/needs 12/))
    expect(() => parseNpy(Buffer.from('{"n": 3}'))).toThrowError(invalid(/bad magic/))
  })
})

describe('parseRawFloat32', () => {
  it('reads little-endian float32 and refuses a partial value', () => {
    expect(Array.from(parseRawFloat32(rawF32([1, -0.5, 1e30])).values)).toEqual([1, -0.5, Math.fround(1e30)])
    expect(() => parseRawFloat32(Buffer.alloc(7))).toThrowError(invalid(/whole number of float32/))
  })
})

describe('compareFloatArrays', () => {
  it('accepts differences within atol + rtol * magnitude, like numpy.allclose', () => {
    expect(compareFloatArrays(arr([1000, 0]), arr([1000.009, 5e-9]), tol).equal).toBe(true)
    const d = compareFloatArrays(arr([1000, 0, 1]), arr([1000.02, 0, 1]), tol)
    expect(d).toMatchObject({ equal: false, mismatches: 1, firstMismatch: 0 })
    expect(d.maxAbsDiff).toBeCloseTo(0.02, 6)
  })

  it('is symmetric: the verdict does not depend on which run came first', () => {
    const a = arr([1, 100])
    const b = arr([1 + 1.5e-5, 100])
    const loose = { ...tol, rtol: 1.4e-5, atol: 0 }
    expect(compareFloatArrays(a, b, loose).equal).toBe(compareFloatArrays(b, a, loose).equal)
  })

  it('treats NaN explicitly: equal at the same index only when asked, never against a number', () => {
    expect(compareFloatArrays(arr([NaN, 1]), arr([NaN, 1]), tol).equal).toBe(true)
    expect(compareFloatArrays(arr([NaN, 1]), arr([NaN, 1]), { ...tol, nan: 'differ' })).toMatchObject({
      equal: false,
      mismatches: 1,
    })
    expect(compareFloatArrays(arr([NaN]), arr([0]), tol).equal).toBe(false)
  })

  it('matches an infinity only with the same infinity', () => {
    expect(compareFloatArrays(arr([Infinity, -Infinity]), arr([Infinity, -Infinity]), tol).equal).toBe(true)
    expect(compareFloatArrays(arr([Infinity]), arr([-Infinity]), tol).equal).toBe(false)
    expect(compareFloatArrays(arr([Infinity]), arr([1e308]), { ...tol, rtol: 1 }).equal).toBe(false)
  })

  it('refuses different shapes', () => {
    expect(compareFloatArrays(arr([1, 2, 3, 4], [2, 2]), arr([1, 2, 3, 4], [4]), tol)).toMatchObject({
      equal: false,
      reason: expect.stringContaining('shapes differ'),
    })
  })
})
