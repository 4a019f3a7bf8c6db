from edgeforge_gpu.worker import main

if __name__ == "__main__":
    main()
